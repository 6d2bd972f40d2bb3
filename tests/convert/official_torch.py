"""PyTorch versions of the release's three modules, written from ../shared/reference/ATVGNET.md (summarised in docs/METHOD.md).

Only for tests: their state dicts have the tensor names and shapes of the official checkpoints
(official_state_dict.txt), so converting them exercises every mapping of `atvg_tf.convert.official_weights`.
"""

import torch
from torch import nn


def conv_block(cin, cout, kernel=3, stride=1, padding=None):
    padding = kernel // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


def up(cin, cout, bias=False):
    return [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(True)]


class ATNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lmark_encoder = nn.Sequential(nn.Linear(6, 256), nn.ReLU(True), nn.Linear(256, 512), nn.ReLU(True))
        self.audio_eocder = nn.Sequential(
            conv_block(1, 64), conv_block(64, 128), nn.MaxPool2d(3, stride=(1, 2)),
            conv_block(128, 256), conv_block(256, 256), conv_block(256, 512), nn.MaxPool2d(3, stride=(2, 2)),
        )
        self.audio_eocder_fc = nn.Sequential(nn.Linear(12288, 2048), nn.ReLU(True), nn.Linear(2048, 256), nn.ReLU(True))
        self.lstm = nn.LSTM(768, 256, 3, batch_first=True)
        self.lstm_fc = nn.Sequential(nn.Linear(256, 6))

    def forward(self, example_code, audio):  # [B, 6], [B, T, 28, 12]
        landmark = self.lmark_encoder(example_code)
        batch, steps = audio.shape[:2]
        features = self.audio_eocder_fc(self.audio_eocder(audio.reshape(batch * steps, 1, 28, 12)).reshape(batch * steps, -1))
        fused = torch.cat([landmark[:, None].expand(-1, steps, -1), features.reshape(batch, steps, -1)], 2)
        return self.lstm_fc(self.lstm(fused)[0])


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True), nn.Dropout(0.5),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class ConvGRU(nn.Module):
    """One layer, gates r, z, n; fed (batch, time, ...) as if time-major, like the release."""

    def __init__(self, cin, hidden):
        super().__init__()
        self.hidden = hidden
        self.weight_ih_l0 = nn.Parameter(torch.randn(3 * hidden, cin, 3, 3) * 0.02)
        self.weight_hh_l0 = nn.Parameter(torch.randn(3 * hidden, hidden, 3, 3) * 0.02)
        self.bias_ih_l0 = nn.Parameter(torch.randn(3 * hidden) * 0.02)
        self.bias_hh_l0 = nn.Parameter(torch.randn(3 * hidden) * 0.02)

    def forward(self, sequence):  # [S, N, C, H, W], S the recurrence axis
        conv = lambda x, w, b: nn.functional.conv2d(x, w, b, padding=2, dilation=2)  # noqa: E731
        h = sequence.new_zeros(sequence.shape[1], self.hidden, *sequence.shape[3:])
        outputs = []
        for x in sequence:
            x_r, x_z, x_n = conv(x, self.weight_ih_l0, self.bias_ih_l0).chunk(3, 1)
            h_r, h_z, h_n = conv(h, self.weight_hh_l0, self.bias_hh_l0).chunk(3, 1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            h = n + z * (h - n)
            outputs.append(h)
        return torch.stack(outputs)


class VGNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder1 = nn.Sequential(
            nn.ReflectionPad2d(3), conv_block(3, 64, 7, padding=0), conv_block(64, 64, 3, 2), conv_block(64, 128, 3, 2)
        )
        self.image_encoder2 = nn.Sequential(conv_block(128, 256, 3, 2), conv_block(256, 512, 3, 2))
        self.landmark_encoder = nn.Sequential(nn.Linear(136, 64), nn.ReLU(True))
        self.landmark_encoder_stage2 = nn.Sequential(conv_block(1, 256))
        self.lmark_att = nn.Sequential(*up(512, 256, True), *up(256, 128, True), nn.Sequential(nn.Conv2d(128, 1, 3, 1, 1), nn.Sigmoid()))
        self.lmark_feature = nn.Sequential(conv_block(256, 512))
        self.generator1 = nn.Sequential(*[ResBlock(512) for _ in range(9)], *up(512, 256), *up(256, 128))
        self.base = nn.Sequential(*up(128, 64), *up(64, 32))
        self.generator_color = nn.Sequential(nn.Conv2d(32, 3, 7, 1, 3), nn.Tanh())
        self.generator_attention = nn.Sequential(nn.Conv2d(32, 1, 7, 1, 3), nn.Sigmoid())
        self.bottle_neck = nn.Sequential(conv_block(1024, 128))
        self.convGRU = ConvGRU(128, 512)

    def _stage2(self, landmarks):
        return self.landmark_encoder_stage2(self.landmark_encoder(landmarks).reshape(-1, 1, 8, 8))

    def forward(self, image, landmarks, example_landmark):  # [B, 3, 128, 128], [B, T, 136], [B, 136]
        batch, steps = landmarks.shape[:2]
        features1 = self.image_encoder1(image)
        image_feature = self.image_encoder2(features1)
        example_stage2 = self._stage2(example_landmark)
        example_feature = self.lmark_feature(example_stage2)
        stage2 = self._stage2(landmarks.reshape(batch * steps, 136))
        repeat = lambda x: x.repeat_interleave(steps, 0)  # noqa: E731
        attention_maps = self.lmark_att(torch.cat([stage2, repeat(example_stage2)], 1))
        motion = self.lmark_feature(stage2) - repeat(example_feature)
        bottle = self.bottle_neck(torch.cat([repeat(image_feature), motion], 1)).reshape(batch, steps, 128, 8, 8)
        hidden = self.convGRU(bottle).reshape(batch * steps, 512, 8, 8)  # the release's time-major call
        decoded = self.generator1(hidden)
        decoded = decoded * attention_maps + repeat(features1) * (1 - attention_maps)
        decoded = self.base(decoded)
        color, attention = self.generator_color(decoded), self.generator_attention(decoded)
        frames = attention * color + (1 - attention) * repeat(image)
        shape = lambda x: x.reshape(batch, steps, *x.shape[1:])  # noqa: E731
        return shape(frames), shape(attention), shape(color)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder_dis = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 64, 3, 2, 1), nn.ReLU(True)),
            conv_block(64, 128, 3, 2), conv_block(128, 256, 3, 2), conv_block(256, 512, 3, 2),
        )
        self.encoder = nn.Sequential(nn.Linear(136, 256), nn.ReLU(True), nn.Linear(256, 512), nn.ReLU(True))
        self.decoder = nn.Sequential(nn.Linear(1024, 512), nn.ReLU(True), nn.Linear(512, 136))  # never called
        self.img_fc = nn.Sequential(nn.Linear(32768, 512), nn.ReLU(True))
        self.lstm = nn.LSTM(1024, 256, 3, batch_first=True)
        self.lstm_fc = nn.Sequential(nn.Linear(256, 136), nn.Tanh())
        self.decision = nn.Sequential(nn.Linear(256, 1))

    def forward(self, frames, example_landmark):  # [B, T, 3, 128, 128], [B, 136]
        batch, steps = frames.shape[:2]
        images = self.img_fc(self.image_encoder_dis(frames.reshape(batch * steps, 3, 128, 128)).reshape(batch * steps, -1))
        landmark = self.encoder(example_landmark)
        out = self.lstm(torch.cat([landmark[:, None].expand(-1, steps, -1), images.reshape(batch, steps, -1)], 2))[0]
        return self.lstm_fc(out) + example_landmark[:, None], self.decision(out).mean(1)


def randomize(module, seed):
    """Random weights and BatchNorm statistics (the defaults would make BatchNorm an identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.dtype.is_floating_point:
                if name.endswith("running_var"):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
                elif name.endswith(("running_mean", "bias")):
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
                elif tensor.dim() == 1:  # BatchNorm weight
                    tensor.copy_(1 + torch.randn(tensor.shape, generator=generator) * 0.1)
                else:
                    fan_in = tensor[0].numel()
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return module.eval()
