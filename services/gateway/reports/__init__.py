"""The weekly flash report: every program metric of an ISO week with last week's value, a goal,
a RAG status and a path-to-green note, as JSON, Markdown or HTML (inline SVG charts); stored
once a week has ended so a past week reads back unchanged. The HTML body for the console is
`services.gateway.reports.render.render_html(report)`."""
