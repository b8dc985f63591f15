// Public API of the smart card codecs: pure functions over bytes, no editor or device imports.
export * from './sw';
export * from './atr';
export * from './smartcardList';
export * from './apdu';
export * from './tlv';
export * from './pcscFeatures';
export * from './pinpad';
