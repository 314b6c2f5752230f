"""Behaviour: prompt sets and the judges that say what a completion does."""
