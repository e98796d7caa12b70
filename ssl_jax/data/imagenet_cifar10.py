"""ImageNet-1k classes standing for each CIFAR-10 class: zero-shot CIFAR-10
predictions from an ImageNet classifier, to check converted weights.

The lists were built by hand from the ImageNet-1k class names in their
standard index order (as in tensorflow_datasets' SI-Score
`IMAGENET_LABELS_LIST`), following WordNet's hierarchy: an ImageNet class
belongs to a CIFAR class if its synset is a hyponym of that class's noun
(airplane.n.01, car.n.01, bird.n.01, domestic_cat.n.01, dog.n.01, frog.n.01,
horse.n.01, vessel.n.02, truck.n.01). No WordNet data was available offline
(no nltk corpus), so the hyponymy is as recalled, not computed. Choices
beyond strict hyponymy, each noted in place:
  * airplane adds 908 'wing' (close-ups of aircraft wings);
  * deer: ImageNet-1k has no deer (no cervid synset); its nearest classes
    are the antelopes 351-353, which stand in;
  * horse adds 603 'horse cart';
  * ship is any vessel: boats (canoe, gondola, speedboat, ...) count, as
    they do in CIFAR-10's 'ship';
  * truck leaves out 717 'pickup': CIFAR-10 puts pickups in neither
    automobile nor truck (its description: "Neither includes pickup
    trucks"), so pickup probability counts for no class.
"""
import numpy as np

# CIFAR-10 class (in its label order) -> ImageNet-1k class indices.
CLASSES = {
    # 404 airliner, 895 warplane, 908 wing.
    "airplane": (404, 895, 908),
    # 407 ambulance, 436 beach wagon, 468 cab, 511 convertible, 609 jeep,
    # 627 limousine, 656 minivan, 661 Model T, 751 racer, 817 sports car.
    "automobile": (407, 436, 468, 511, 609, 627, 656, 661, 751, 817),
    # 59 birds: 7 cock .. 24 great grey owl, 80 black grouse .. 100 black
    # swan, 127 white stork .. 146 albatross.
    "bird": tuple(range(7, 25)) + tuple(range(80, 101)) +
            tuple(range(127, 147)),
    # 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat.
    "cat": tuple(range(281, 286)),
    # No deer in ImageNet-1k: 351 hartebeest, 352 impala, 353 gazelle.
    "deer": (351, 352, 353),
    # The 118 dog breeds, 151 Chihuahua .. 268 Mexican hairless (269-280
    # are wolves, wild dogs and foxes).
    "dog": tuple(range(151, 269)),
    # 30 bullfrog, 31 tree frog, 32 tailed frog.
    "frog": (30, 31, 32),
    # 339 sorrel (ImageNet's only horse), 603 horse cart.
    "horse": (339, 603),
    # 403 aircraft carrier, 472 canoe, 484 catamaran, 510 container ship,
    # 554 fireboat, 576 gondola, 625 lifeboat, 628 liner, 724 pirate ship,
    # 780 schooner, 814 speedboat, 833 submarine, 871 trimaran, 914 yawl.
    "ship": (403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833,
             871, 914),
    # 555 fire engine, 569 garbage truck, 675 moving van, 734 police van,
    # 864 tow truck, 867 trailer truck.
    "truck": (555, 569, 675, 734, 864, 867),
}


def membership(num_imagenet: int = 1000) -> np.ndarray:
  """(num_imagenet, 10) 0/1 matrix: column c marks CLASSES' c-th list."""
  m = np.zeros((num_imagenet, len(CLASSES)), np.float32)
  for c, indices in enumerate(CLASSES.values()):
    m[list(indices), c] = 1
  return m


def predict(imagenet_probs: np.ndarray) -> np.ndarray:
  """CIFAR-10 labels: per row, the class whose ImageNet classes hold the
  most summed probability."""
  return np.argmax(np.asarray(imagenet_probs) @ membership(
      np.shape(imagenet_probs)[-1]), axis=-1)
