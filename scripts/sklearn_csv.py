#!/usr/bin/python3
"""sklearn_csv.py - scikit-learn's bundled tabular data sets as brick CSV tables.

Reads the files Debian's python3-sklearn ships (no sklearn import, no network) and writes
OUT/NAME/train.csv and OUT/NAME/test.csv: a header row, then one row per sample, the target
in the last column, the rows split 80/20 by a fixed shuffle (random.Random(0)), so every run
writes the same files.

    scripts/sklearn_csv.py OUT            # iris, wine, breast_cancer, diabetes
    scripts/sklearn_csv.py OUT iris wine  # only these

Formats of the sources (sklearn/datasets/data/):
  iris.csv, wine_data.csv, breast_cancer.csv: the first line is NOT a header but
      "n_samples,n_features,class names...", then rows of features and an integer class;
  diabetes_data_raw.csv.gz: space-separated rows of the 10 raw features (age, sex, bmi,
      bp, s1..s6); diabetes_target.csv.gz: one target per line (disease progression).
"""
import gzip
import os
import random
import sys

SRC = os.environ.get("SKLEARN_DATA", "/usr/lib/python3/dist-packages/sklearn/datasets/data")

FEATURES = {
    "iris": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "diabetes": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"],
}


def read_counted(name):
    """A file of sklearn's load_csv_data format: (rows, class names)."""
    with open(os.path.join(SRC, name)) as f:
        first = f.readline().strip().split(",")
        n, n_features, names = int(first[0]), int(first[1]), first[2:]
        rows = [line.strip().split(",") for line in f if line.strip()]
    if len(rows) != n or any(len(r) != n_features + 1 for r in rows):
        sys.exit(f"{name}: expected {n} rows of {n_features + 1} cells")
    return rows, names


def read_diabetes():
    with gzip.open(os.path.join(SRC, "diabetes_data_raw.csv.gz"), "rt") as f:
        x = [line.split() for line in f if line.strip()]
    with gzip.open(os.path.join(SRC, "diabetes_target.csv.gz"), "rt") as f:
        y = ["%g" % float(line) for line in f if line.strip()]
    if len(x) != len(y):
        sys.exit(f"diabetes: {len(x)} rows of features but {len(y)} targets")
    return [r + [t] for r, t in zip(x, y)]


def load(name):
    """(header, rows, class names or None) of data set `name`."""
    if name == "diabetes":
        rows = read_diabetes()
        return FEATURES["diabetes"] + ["progression"], rows, None
    rows, classes = read_counted({"wine": "wine_data.csv"}.get(name, name + ".csv"))
    n_features = len(rows[0]) - 1
    header = FEATURES.get(name, ["x%d" % (i + 1) for i in range(n_features)]) + ["class"]
    return header, rows, classes


def write(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out, names = sys.argv[1], sys.argv[2:] or ["iris", "wine", "breast_cancer", "diabetes"]
    for name in names:
        header, rows, classes = load(name)
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        n_test = len(rows) // 5
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        write(os.path.join(d, "train.csv"), header, [rows[i] for i in order[n_test:]])
        write(os.path.join(d, "test.csv"), header, [rows[i] for i in order[:n_test]])
        kind = "%d classes (%s)" % (len(classes), ", ".join(classes)) if classes else "regression"
        print(f"{d}: {len(rows) - n_test} training and {n_test} test rows, {len(header) - 1} features, {kind}")


if __name__ == "__main__":
    main()
