"""napari glue: the only package that imports napari or Qt."""
