"""Running the stages: options and methods, the pipeline, the child-process job, memory, batch."""
