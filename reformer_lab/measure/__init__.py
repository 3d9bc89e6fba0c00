"""Measurement: formulas, memory tools, benchmarks, experiment runners and the statistics behind the lessons' tables.

Imports the Reformer itself (the modules at the top of the package) and nothing from
:mod:`reformer_lab.lessons`; it draws nothing, so it needs neither Matplotlib nor ipywidgets.
"""
