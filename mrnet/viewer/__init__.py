"""The exam viewer: self-contained HTML pages that show what the models saw.

page.py renders one exam (three planes, slice sliders, CAM overlays, per-slice scores,
probabilities), index.py the list of exams, build.py computes what a page shows from the
models and writes the pages with their index (write_exam_pages, used by predict --html and
the evaluation report), images.py encodes the pictures, browser.py drives headless Chromium
for checks and screenshots. The JavaScript and CSS live in static/ and are inlined into
every page, so a page opens from the file system in any browser, without a server or a network.
"""
