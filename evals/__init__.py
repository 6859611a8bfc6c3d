"""SWE-bench datasets, task images, batch runs and official-compatible grading."""
