"""The core library: model loading, backends, interventions, directions, activations, generation,
measurement. Imports nothing from behaviour, study or the CLI."""
