declare module '*.css';
/** Every file of src/views, imported by the build (apps/console/build.mjs); each registers its view. */
declare module 'virtual:views' {}
