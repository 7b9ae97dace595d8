"""What a person working from Python, a terminal or a notebook sees and waits for: results as HTML
(a verdict badge, tables with the wrong rows marked, a small cost curve), the progress bar (tqdm:
a widget in Jupyter, a bar on a terminal, a line per run in a log), the cost figure a result
draws, and the thread counts that make a call from Python as fast as the command line.

Imports nothing of compare (it renders what it is given: rows, lines, curves), only tqdm,
matplotlib, torch and threadpoolctl; every room that shows a result or runs one may import it.

    html         badge, html_table, html_lines, svg_curves, result_html
    progress     ProgressBar, RunLines, progress_for, progress_wanted
    pictures     cost_figure, new_figure, figure_png (the dashboards draw with them too)
    threads      single_threaded, runs_single_threaded
"""
