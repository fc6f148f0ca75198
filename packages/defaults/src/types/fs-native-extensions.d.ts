/** The part of fs-native-extensions this package uses (the package ships no types). */
declare module 'fs-native-extensions' {
  /** True when the lock was granted, false when another file description holds a conflicting one. */
  export function tryLock(fd: number, options?: { readonly shared?: boolean }): boolean;
  export function unlock(fd: number): void;
}
