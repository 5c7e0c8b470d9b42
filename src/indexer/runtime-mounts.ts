/**
 * Top-level directories the container runtime mounts over (procfs, sysfs, a tmpfs for /dev). What a layer
 * ships beneath them is hidden at run time anyway, and device nodes there are better not served over
 * FUSE, so the index leaves it out. The directories themselves stay, so the mount points exist with the
 * mode and owner the image gives them.
 */
const RUNTIME_MOUNTS = new Set(['proc', 'sys', 'dev']);

/** True for a normalised path strictly beneath top-level proc/, sys/ or dev/. */
export function isUnderRuntimeMount(path: string): boolean {
  const slash = path.indexOf('/');
  return slash > 0 && RUNTIME_MOUNTS.has(path.slice(0, slash));
}
