"""Fuzzing of every input an operator or a peer feeds in (``tox -e fuzz``)."""
