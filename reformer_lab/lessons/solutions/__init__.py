"""Worked solutions to the lessons' exercises, one module per lesson.

Look here only when you want to: each lesson's checks in :mod:`reformer_lab.lessons.exercises` tell you what is
wrong first. The tests run every solution through its check.
"""
