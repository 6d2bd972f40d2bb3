"""`atvg app`: the web page (Gradio) where a photo and speech become a talking-face video.

`service` holds the models and limits (no Gradio); `page` is the Gradio page and API over it.
"""
