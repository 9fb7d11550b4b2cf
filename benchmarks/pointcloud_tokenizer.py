"""Point-group tokenization speed: mmcore's batched torch FPS + kNN against open3d on the CPU.

Both sides tokenize the same clouds into G centres (farthest-point sampling)
and the K nearest points of each centre:

* mmcore: `PointGroupTokenizer.tokenize` on a [B, P, 3] batch (pure torch; the
  same code runs batched on a GPU);
* open3d: per cloud, `PointCloud.farthest_point_down_sample(G)` then
  `KDTreeFlann` built once and `search_knn_vector_3d(centre, K)` per centre.

Rounds alternate between the two so machine load hits both alike; the median
round is reported as clouds/s, with the ratio mmcore / open3d.

    python benchmarks/pointcloud_tokenizer.py                      # B=32, P=2048, G=64, K=32
    python benchmarks/pointcloud_tokenizer.py --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import open3d as o3d
import torch

from mm_pointcloud import PointGroupTokenizer


def open3d_groups(cloud: np.ndarray, G: int, K: int) -> np.ndarray:
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
    centres = np.asarray(pcd.farthest_point_down_sample(G).points)
    tree = o3d.geometry.KDTreeFlann(pcd)
    groups = [cloud[np.asarray(tree.search_knn_vector_3d(c, K)[1])] - c for c in centres]
    return np.stack(groups)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clouds = np.random.default_rng(0).normal(size=(args.batch, args.points, 3))
    tok = PointGroupTokenizer(num_points=args.points, num_groups=args.groups, group_size=args.group_size)
    batch = {"points": torch.from_numpy(clouds).float().to(args.device)}
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    tok.tokenize(batch), sync()  # warm-up
    ours, theirs = [], []
    for _ in range(args.rounds):
        tick = time.perf_counter()
        tok.tokenize(batch)
        sync()
        ours.append(args.batch / (time.perf_counter() - tick))
        tick = time.perf_counter()
        for cloud in clouds:
            open3d_groups(cloud, args.groups, args.group_size)
        theirs.append(args.batch / (time.perf_counter() - tick))
    result = {
        "device": args.device,
        "threads": args.threads,
        "batch": args.batch,
        "points": args.points,
        "groups": args.groups,
        "group_size": args.group_size,
        "mmcore_clouds_per_s": statistics.median(ours),
        "open3d_clouds_per_s": statistics.median(theirs),
    }
    result["ratio"] = result["mmcore_clouds_per_s"] / result["open3d_clouds_per_s"]
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
