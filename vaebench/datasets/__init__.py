"""Dataset sources, in modules by kind: base.py (the `Dataset` every source returns, `DatasetSource`,
the `DATASETS` registry, checksum, ensure_files), builtin.py (mnist, digits, synthetic) and shapes.py.
vaebench/data.py imports them all, with image_folder.py and datasets_torchvision.py, and is the
module to import from: `from vaebench.data import DATASETS, DatasetSource, load_dataset`.
"""
