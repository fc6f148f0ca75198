"""Scores every trained model on the test set and passes the best one on (ties go to the first)."""
import csv
import pickle
import shutil

from step_io import inputs, output_path, write_value

args = inputs()
with open(args["test"]["path"], newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    next(reader)
    rows = list(reader)
X = [[float(v) for v in r[:-1]] for r in rows]
y = [r[-1] for r in rows]

scores = []
for m in args["models"]:
    with open(m["path"], "rb") as f:
        scores.append(float(pickle.load(f).score(X, y)))
best = max(range(len(scores)), key=lambda i: (scores[i], -i))
shutil.copyfile(args["models"][best]["path"], output_path("best"))
write_value("accuracy", scores[best])
write_value("scores", scores)
write_value("bestIndex", best)
