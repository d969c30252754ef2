"""The base layer every stage reads: params, paths, labels, file writes, manifests, zip checks, seeding, progress."""
