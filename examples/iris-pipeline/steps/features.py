"""Splits the dataset into stratified train and test sets (seeded, so reruns give the same bytes)."""
import csv

from sklearn.model_selection import train_test_split

from step_io import inputs, output_path, write_value

args = inputs()
with open(args["dataset"]["path"], newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = list(reader)

train, test = train_test_split(
    rows, test_size=args["testFraction"], random_state=args["seed"], stratify=[r[-1] for r in rows]
)
for name, part in (("train", train), ("test", test)):
    with open(output_path(name), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(part)
write_value("trainRows", len(train))
