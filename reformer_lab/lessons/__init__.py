"""The lessons' own code: one module per lesson (figures and widgets), the exercises and their solutions.

``lNN_topic.py`` belongs to notebook ``NN``; its numbers come from the module of the same topic in
:mod:`reformer_lab.measure` (``l02_chunking`` draws what ``measure.chunking_stats`` computes).
``common`` holds what every lesson's figures share. This is the only layer that imports Matplotlib
or ipywidgets.
"""

from reformer_lab.lessons.setup import setup_notebook

__all__ = ["setup_notebook"]
