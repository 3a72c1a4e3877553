/** This package's version (package.json "version"; a test keeps the two equal). Pure, for browser bundles too. */
export const PACKAGE_NAME = 'show-attend-tell';
export const PACKAGE_VERSION = '0.1.0';
