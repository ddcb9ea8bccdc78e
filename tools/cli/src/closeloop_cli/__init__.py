"""``closeloop``: the jobs operators used to do by hand, with clear output and progress bars."""
