"""What a user's script calls: a trained detector loaded, its predictions, drawn pictures."""
from .inference import (
                        build_inferencer,
                        image_paths,
                        is_video,
                        load_detector,
                        network_input,
                        predict,
                        run_on_images,
                        run_on_video,
)

__all__ = ['load_detector', 'predict', 'network_input', 'build_inferencer', 'image_paths', 'is_video',
           'run_on_images', 'run_on_video']
