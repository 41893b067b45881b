"""`make torch-mnist`, the PyTorch half; run as a program by the torch venv's Python (stdlib, NumPy, torch).

The experiment one of the project's source documents ran: PyTorch's classic MNIST CNN (two 3x3
convolutions, 9216->128->10 dense layers: 1.2 M parameters), trained on CPU, then dynamically
quantised the PyTorch way (nn.Linear weights to INT8). Writes the FP32 model as ONNX for edgekit's
path and the PyTorch figures (state_dict size, top-1 on the test split, p50 at one thread) as JSON.

    python -I torch_mnist_train.py DATA.npz OUT_DIR [EPOCHS]

(-I: this folder must not be on sys.path, its profile.py would shadow the standard library's.)
"""
from __future__ import annotations

import io
import json
import sys
import time
import warnings

import numpy as np


def main(data_path: str, out: str, epochs: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
            self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2)
            return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

    data = np.load(data_path)
    tensor = lambda x: torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # noqa: E731
    x_train, y_train = tensor(data["x_train"]), torch.from_numpy(data["y_train"].astype(np.int64))
    x_test, y_test = tensor(data["x_test"]), data["y_test"]
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    torch.set_num_threads(2)
    for _ in range(epochs):
        model.train()
        for i in torch.randperm(len(x_train)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[i]), y_train[i]).backward()
            opt.step()
    torch.set_num_threads(1)
    model.eval()
    dynamic = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)

    def figures(m) -> dict:
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        with torch.no_grad():
            top1 = float((m(x_test).argmax(1).numpy() == y_test).mean())
            one = x_test[:1]
            for _ in range(20):
                m(one)
            samples = []
            for _ in range(300):
                t0 = time.perf_counter_ns()
                m(one)
                samples.append((time.perf_counter_ns() - t0) / 1000)
        return {"size_kb": round(buf.tell() / 1024, 1), "top1": top1, "p50_us": float(np.median(samples))}

    result = {"torch": torch.__version__, "epochs": epochs, "fp32": figures(model), "dynamic_int8": figures(dynamic)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x_test[:1],), f"{out}/torch_mnist.onnx", opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamo=False)
    with open(f"{out}/torch.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
