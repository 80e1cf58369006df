"""Developer-only code: synthetic chests with exact truth, thick-slice cases, dataset
readers (NSCLC RTSTRUCT, LIDC XML, MSD) for the tests, the benchmarks and training. It is
not part of the Slicer extension and is never shipped with it."""
