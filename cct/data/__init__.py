"""Caffe's datasets: Datum records in LMDB/LevelDB databases, image files and list files, the
DataTransformer of ``transform_param``, and background prefetching for the data layers.

Optional packages (the ``data`` extra): ``lmdb``, ``plyvel`` (LevelDB), ``opencv-python-headless``
(image decoding, as Caffe decodes: BGR), ``h5py`` (HDF5Data/HDF5Output) and ``tqdm`` (the tools'
progress bars). Each is imported only when used.
"""
