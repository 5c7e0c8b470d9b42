/**
 * The fields of a snapshot's Info that List filters can name, as containerd's snapshot adaptor exposes
 * them (name, parent, kind, labels.<key>); matched by filters.ts.
 */
import { Info, Kind } from './types';

export /** Field lookup for List filters: name, parent, kind and labels.<key>, as containerd's adaptor. */
function infoField(info: Info, fieldpath: string[]): string | undefined {
  const [first, ...rest] = fieldpath;
  switch (first) {
    case 'name':
      return info.name;
    case 'parent':
      return info.parent;
    case 'kind':
      return Kind[info.kind].toLowerCase();
    case 'labels':
      return rest.length === 0 ? undefined : info.labels[rest.join('.')];
    default:
      return undefined;
  }
}
