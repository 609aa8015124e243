"""Search over requests: similar/duplicate detection, full-text, filtered and sorted lists, CSV export."""
