"""Frame sources that need a capture library: video files, V4L2 cameras and network streams
through OpenCV, the Raspberry Pi camera through picamera2. Each imports its library only when
opened, so the agent runs without them for files, stdin, images: and .npy."""
