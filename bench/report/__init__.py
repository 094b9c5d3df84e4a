"""The report: the paper's tables and figures with multi-seed statistics, from a results tree."""
