"""catsdogs: a DVC pipeline that trains cats-vs-dogs classifiers on the Kaggle Dogs vs. Cats photos.

The layers, each a subpackage; a layer imports only those listed before it:

- :mod:`catsdogs.core`: params (validated), paths, labels, atomic file writes, manifests, safe zip
  checks, seeding, progress, the run-a-stage rule, TensorFlow's quieting;
- :mod:`catsdogs.sources`: where the photos come from (Kaggle, the Microsoft mirror, a URL, an
  archive, folders, generated) and the HTTP client that fetches them; only the download stage;
- :mod:`catsdogs.data`: image checks, the split, datasets, augmentation, feature files;
- :mod:`catsdogs.models`: the networks (the recipes, VGG16, the top classifier), layers, precision,
  model files;
- :mod:`catsdogs.train`: the fit loop with early stopping and resume, distribution;
- :mod:`catsdogs.predict`: the predictor evaluate, submission and ``catsdogs predict`` share; metrics;
- :mod:`catsdogs.report`: figures and the summary;
- :mod:`catsdogs.stages`: one thin module per DVC stage, run as ``python -m catsdogs.stages <name>``;
- :mod:`catsdogs.cli`: the ``catsdogs`` command.

dvc.yaml makes each stage depend on the folders of the layers it imports, so an edit to the
plotting code never reruns training. Importing the package does nothing else.
"""
