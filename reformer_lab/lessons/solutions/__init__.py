"""Worked solutions to the lessons' exercises, one module per lesson.

Look here only when you want to: each lesson's checks tell you what is wrong first. ``lNN.F`` here solves the
exercise that :func:`reformer_lab.lessons.exercises.lNN.check_F` grades; the tests run every solution through its
check.
"""
