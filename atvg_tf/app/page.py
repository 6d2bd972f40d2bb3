"""The web page of `atvg app`: Gradio Blocks over `TalkingFaceService`.

The same function is the page's button and a named API endpoint (`/generate`), so
`gradio_client` gets exactly what the page shows.
"""

from __future__ import annotations

import os

import cv2
import gradio as gr

from atvg_tf.app.service import DEFAULT_MODEL, MODES, RENDERERS, TalkingFaceService
from atvg_tf.errors import AtvgError, one_line

TITLE = "atvg: make a photo talk"
INTRO = ("Give a photo with a face and a recording of speech; the face says it. "
         "`hybrid` keeps the photo's own face and moves it (sharp); `vgnet` shows the network's own "
         "128 px face (the paper's look). Nothing you upload is shown to anyone else, and results are "
         "deleted after an hour.")


def example_files(folder: str) -> list[list[str]]:
    """One-click examples from installed packages (none are copied into this repository).

    The photo is scikit-image's `astronaut` (NASA, public domain), written once into `folder`; the
    speech is the sample recordings Gradio ships (`gradio/media_assets/audio`).
    """
    from skimage import data

    photo = os.path.join(folder, "astronaut.jpg")
    if not os.path.isfile(photo):
        cv2.imwrite(photo, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    audio = os.path.join(os.path.dirname(gr.__file__), "media_assets", "audio")
    speech = [os.path.join(audio, name) for name in ("cate_blanch.mp3", "heath_ledger.mp3")]
    return [[photo, clip] for clip in speech if os.path.isfile(clip)]


def build_page(service: TalkingFaceService, examples_dir: str, api: bool = True) -> gr.Blocks:
    """The page; `api=False` leaves the generation out of the API (page only)."""

    def generate(photo, speech, model, renderer, mode, progress=gr.Progress()):
        def on_frames(done: int, total: int | None) -> None:
            progress((done, total) if total else done, desc="generating", unit="frames")

        progress(0, desc="reading the photo and the speech")
        try:
            result = service.generate(photo, speech, model, renderer, mode, on_frames)
        except (AtvgError, OSError) as error:  # the user's input: the CLI's one line, never a traceback
            raise gr.Error(one_line(error), print_exception=False) from None
        return result.video, gr.DownloadButton(value=result.video, visible=True), result.landmarks, result.summary

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(600, int(service.limits.keep_outputs_seconds))) as page:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Photo (one face)", sources=["upload", "webcam", "clipboard"], type="filepath",
                                 elem_id="photo")
                speech = gr.Audio(label=f"Speech (up to {service.limits.max_audio_seconds:g} s)",
                                  sources=["upload", "microphone"], type="filepath", elem_id="speech")
                with gr.Row():
                    model = gr.Dropdown(service.model_names, value=DEFAULT_MODEL, label="Model", elem_id="model")
                    renderer = gr.Radio(list(RENDERERS), value="hybrid", label="Renderer", elem_id="renderer")
                    mode = gr.Radio(list(MODES), value="paste-back", label="Output", elem_id="mode")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Talking face", elem_id="video", buttons=["download"])
                download = gr.DownloadButton("Download the MP4", elem_id="download", visible=False)  # shown with a video
                landmarks = gr.File(label="Predicted landmarks [frames, 68, 2] (.npy)", elem_id="landmarks")
                summary = gr.Textbox(label="Run", interactive=False, elem_id="summary")
        gr.Examples(example_files(examples_dir), inputs=[photo, speech], label="Examples (click one, then Generate)")
        button.click(generate, [photo, speech, model, renderer, mode], [video, download, landmarks, summary],
                     api_name="generate", api_visibility="public" if api else "private",
                     concurrency_limit=service.limits.concurrency)
    return page


def serve(service: TalkingFaceService, examples_dir: str, host: str, port: int, api: bool = True) -> None:
    """Builds the page and serves it until interrupted (never a public share link)."""
    page = build_page(service, examples_dir, api)
    page.queue(default_concurrency_limit=service.limits.concurrency)
    page.launch(server_name=host, server_port=port, share=False, max_file_size=f"{service.limits.max_upload_mb:g}mb",
                allowed_paths=[service.outputs_dir, examples_dir], footer_links=["api", "gradio"] if api else ["gradio"],
                run_history=False, quiet=False)
