import av
import numpy as np
import pytest


@pytest.fixture(scope="session")
def write_video():
    """Write a real video file: a white bar moving right, ``frames`` frames of ``size`` (H, W)."""

    def write(path, frames=12, size=(32, 48), codec="libx264", rate=10, audio=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        H, W = size
        with av.open(str(path), "w") as container:
            if audio:  # an audio-only file: no video stream at all
                stream = container.add_stream("aac", rate=16000)
                for i in range(4):
                    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                    frame.sample_rate, frame.pts = 16000, i * 1024
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
                return path
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            for i in range(frames):
                img = np.zeros((H, W, 3), np.uint8)
                img[:, (2 * i) % W : (2 * i) % W + 8] = 255
                container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            container.mux(stream.encode())
        return path

    return write
