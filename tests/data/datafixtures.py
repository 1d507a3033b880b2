"""Fixture writers: tiny files in each official format, written by the tests (never downloaded)."""
import os

import numpy as np
from PIL import Image


def encode_index(n, size=1):
    """uint8 (n, size, size, 3): pixel RGB encodes the row index (unique for n < 2**24)."""
    i = np.arange(n)
    rgb = np.stack([i % 256, (i // 256) % 256, i // 65536], axis=1).astype(np.uint8)
    return np.broadcast_to(rgb[:, None, None, :], (n, size, size, 3)).copy()


def decode_index(images_nchw):
    x = images_nchw.astype(np.int64)[:, :, 0, 0]
    return x[:, 0] + 256 * x[:, 1] + 65536 * x[:, 2]


def grid_classes(sizes):
    sizes = np.asarray(sizes)
    n = int(np.prod(sizes))
    bases = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
    return (np.arange(n)[:, None] // bases[None]) % sizes[None]


def write_dsprites_npz(path, sizes=(1, 3, 2, 2, 2, 2), res=16, seed=0):
    cls = grid_classes(sizes)
    rs = np.random.RandomState(seed)
    imgs = (rs.uniform(size=(len(cls), res, res)) < 0.3).astype(np.uint8)
    values = cls.astype(np.float64) * 0.5 + 1.0
    np.savez_compressed(path, imgs=imgs, latents_classes=cls.astype(np.int64), latents_values=values)
    return imgs, cls


def write_dsprites_hdf5(path, sizes=(1, 3, 2, 2, 2, 2), res=16, seed=0):
    import h5py

    cls = grid_classes(sizes)
    rs = np.random.RandomState(seed)
    imgs = (rs.uniform(size=(len(cls), res, res)) < 0.3).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f["imgs"] = imgs
        f["latents/classes"] = cls.astype(np.int64)
        f["latents/values"] = cls.astype(np.float64)
    return imgs, cls


SHAPES3D_VALUES = [np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 10),
                   np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]


def write_shapes3d_h5(path, sizes=(2, 2, 1, 2, 2, 3), res=4):
    import h5py

    cls = grid_classes(sizes)
    labels = np.stack([SHAPES3D_VALUES[k][cls[:, k]] for k in range(6)], axis=1)
    imgs = encode_index(len(cls), res)
    with h5py.File(path, "w") as f:
        f["images"] = imgs
        f["labels"] = labels
    return imgs, cls


def write_png(path, array_hwc):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(np.asarray(array_hwc, dtype=np.uint8)).save(path)


def write_grid_folder(root, n, size=8):
    imgs = encode_index(n, size)
    for i in range(n):
        write_png(os.path.join(str(root), "images", f"{i:06d}.png"), imgs[i])
    return imgs


def write_cars3d(root, names, res=4):
    import scipy.io

    os.makedirs(root, exist_ok=True)
    for j, name in enumerate(names):
        im = np.zeros((res, res, 3, 24, 4), dtype=np.uint8)
        for a in range(24):
            for e in range(4):
                im[:, :, :, a, e] = np.array([j, a, e], dtype=np.uint8)
        scipy.io.savemat(os.path.join(root, name + ".mat"), {"im": im, "mask": np.zeros((res, res, 24, 4), np.uint8)})
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


def write_smallnorb(root, res=4):
    """2 categories x 2 instances x 1 elevation x 2 azimuths x 1 lighting, split over train/test."""
    from semistylegan.data.mat_files import NORB_PREFIXES, write_norb_matrix

    os.makedirs(root, exist_ok=True)
    all_labels = []
    for part, prefix in enumerate(NORB_PREFIXES):
        rows = [(c, inst, 0, az, 0) for c in range(2) for inst in range(2) for az in (0, 2) if (inst == part)]
        cat = np.array([r[0] for r in rows], dtype=np.int32)
        info = np.array([[r[1], r[2], r[3], r[4]] for r in rows], dtype=np.int32)
        dat = np.zeros((len(rows), 2, res, res), dtype=np.uint8)
        for i, r in enumerate(rows):
            dat[i, 0] = 10 * r[0] + 3 * r[1] + r[3]  # left image encodes the labels
            dat[i, 1] = 255
        write_norb_matrix(os.path.join(root, f"{prefix}-dat.mat"), dat)
        write_norb_matrix(os.path.join(root, f"{prefix}-cat.mat"), cat)
        write_norb_matrix(os.path.join(root, f"{prefix}-info.mat"), info)
        all_labels += rows
    return all_labels


def write_celeba(root, n=6, partition=True, size=(6, 8)):
    from semistylegan.data.image_folders import CELEBA_ATTRIBUTES

    rs = np.random.RandomState(0)
    vals = rs.choice([-1, 1], size=(n, 40))
    os.makedirs(os.path.join(root, "img_align_celeba"), exist_ok=True)
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        img = np.full((size[1], size[0], 3), 20 * i, dtype=np.uint8)
        Image.fromarray(img).save(os.path.join(root, "img_align_celeba", name), quality=95)
        lines.append(name + " " + " ".join(f"{v:2d}" for v in vals[i]))
    with open(os.path.join(root, "list_attr_celeba.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if partition:
        with open(os.path.join(root, "list_eval_partition.txt"), "w") as f:
            for i in range(n):
                f.write(f"{i + 1:06d}.jpg {i % 3}\n")
    return (vals + 1) // 2


def write_folder(root, size=8):
    """6 images in nested folders; labels.csv with a category, an integer and a continuous factor."""
    files = ["a/x1.png", "a/x2.png", "b/c/y1.png", "b/y2.jpg", "z.png", "unlabelled.png"]
    for i, fn in enumerate(files):
        p = os.path.join(str(root), fn)
        img = np.full((size, size, 3), 30 * i, dtype=np.uint8)
        if fn.endswith(".jpg"):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            Image.fromarray(img).save(p, quality=95)
        else:
            write_png(p, img)
    rows = [
        "file,colour,count,angle:continuous[0..360]",
        "a/x1.png,red,1,0",
        "a/x2.png,blue,3,90",
        "b/c/y1.png,green,2,",
        "b/y2.jpg,,1,360",
        "z.png,red,,180",
    ]
    with open(os.path.join(str(root), "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return files
