"""Fits a logistic regression with regularization strength C on the train set; the model is a pickle."""
import csv
import pickle

from sklearn.linear_model import LogisticRegression

from step_io import inputs, output_path, write_value


def load(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        rows = list(reader)
    return [[float(v) for v in r[:-1]] for r in rows], [r[-1] for r in rows]


args = inputs()
X, y = load(args["train"]["path"])
model = LogisticRegression(C=args["c"], max_iter=1000, random_state=0).fit(X, y)
with open(output_path("model"), "wb") as f:
    pickle.dump(model, f, protocol=4)
write_value("trainAccuracy", float(model.score(X, y)))
