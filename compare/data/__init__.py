"""Data: the data sets both sides train on, the IDX reader for MNIST, and the encoding of targets
for each loss (one-hot, ±1, class indices) with the accuracy of outputs against labels.

Imports NumPy (and scikit-learn, on first use of one of its data sets) and compare.errors only:
nothing here knows about either side, so ``import compare.data`` never loads torch.

    datasets   load_dataset(name, seed, ...) -> Dataset; the registry DATASETS; train/validation splits
    idx        read_idx / write_idx, load_mnist(dir) from the four standard files (plain or .gz)
    targets    encode_targets(y, loss, classes), accuracy(outputs, labels, task)
"""
