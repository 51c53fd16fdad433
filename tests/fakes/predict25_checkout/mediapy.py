"""Stand-in for mediapy.resize_image (the real package is in the checkout's environment)."""

import cv2


def resize_image(image, shape):
    height, width = shape
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
