export { CriKeychain } from './cri-keychain';
export { ImageServiceProxy, RAW_IMAGE_SERVICE } from './image-service-proxy';
export type { ImageServiceProxyOptions } from './image-service-proxy';
export { credentialsOf } from './auth-config';
