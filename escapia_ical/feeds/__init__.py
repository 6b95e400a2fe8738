"""The feeds: from blocked ranges to files on disk (ranges, policy, render, publish, names)."""
