"""Storage: the HDF5 artifacts, prepared and raw data sets, atomic writes, provenance, and the layout of a run's results (paths)."""
