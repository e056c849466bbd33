"""The community health report: figures from the store (``metrics``), drawn as inline SVG
(``charts``), written as a self-contained ``report.html`` and ``report.json`` (``output``)."""
