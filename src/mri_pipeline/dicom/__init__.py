"""The DICOM edge: our Application Entity, its handlers, and Dataset encoding for peers."""
