"""The server-rendered dashboard: Jinja2 templates, a little plain JavaScript, no build step."""
