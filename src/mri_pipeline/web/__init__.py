"""The screens: server-rendered pages (Jinja2) with a little plain JavaScript, all
assets served by the app itself (no CDN, no build step)."""
