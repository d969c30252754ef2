"""Where the photos come from: each ``download.source``, the HTTP client, archive layouts, generated photos."""
