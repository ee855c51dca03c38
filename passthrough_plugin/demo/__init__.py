"""The quick-start job: example hosts through agent, store and scheduler."""
