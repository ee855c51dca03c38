"""Sphinx configuration for the passthrough-plugin release notes."""

extensions = ['reno.sphinxext']
project = 'passthrough-plugin Release Notes'
copyright = 'The passthrough-plugin authors'
master_doc = 'index'
html_theme = 'alabaster'
