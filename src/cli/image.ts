import { buildImages, imageReferences } from "../controlplane/images.ts";
import { parse } from "./args.ts";

// A function: the references come from package.json, read only when help is asked for.
const help = (references = imageReferences()) => `Usage: nextgen-operator image

Builds the operator's image (Dockerfile) and the GPU runner's CPU variant (runners/gpu/Dockerfile with
REQUIREMENTS=requirements.txt) with buildah, from a Debian bookworm base made by mmdebstrap and a Node base holding
the Node the project pins, both from the Debian mirror and the npm registry: no Docker engine, no registry pulls.
Bases and layers are cached (bases in buildah's storage, tagged by what they are made from; archives under
~/.cache/nextgen-operator/images), so a second run rebuilds only what changed. Prints each image's reference and
the docker-archive that 'ctr -n k8s.io images import' loads:

  ${references.operator}   (the reference config/manager/manager.yaml runs)
  ${references.runner}

Needs root, buildah and mmdebstrap.`;

export async function imageCommand(args: string[]): Promise<number> {
  const { values } = parse("image", args, {});
  if (values.help) return (console.log(help()), 0);
  const images = await buildImages((line) => process.stderr.write(`${line}\n`));
  for (const image of Object.values(images)) {
    console.log(`${image.reference} ${image.archive} (${Math.round(image.sizeBytes / 1e6)} MB)`);
  }
  return 0;
}
