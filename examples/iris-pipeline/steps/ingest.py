"""Checks the raw CSV (header, four numeric features, a known species) and writes it back normalized."""
import csv

from step_io import inputs, output_path, write_value

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = {"setosa", "versicolor", "virginica"}

raw = inputs()["raw"]["path"]
rows = []
with open(raw, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    missing = [c for c in FEATURES + ["species"] if c not in (reader.fieldnames or [])]
    if missing:
        raise SystemExit(f"the dataset lacks columns {missing}")
    for n, row in enumerate(reader, start=2):
        if row["species"] not in SPECIES:
            raise SystemExit(f"line {n}: unknown species {row['species']!r}")
        rows.append([f"{float(row[c]):.2f}" for c in FEATURES] + [row["species"]])

with open(output_path("dataset"), "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(FEATURES + ["species"])
    writer.writerows(rows)
write_value("rows", len(rows))
