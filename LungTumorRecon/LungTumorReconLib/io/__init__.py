"""Reading and writing: CT, seeds, segmentations, the results folder, its report and pictures."""
