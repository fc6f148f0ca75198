/** The name of the admin token's file in the data dir (kept apart so client commands need not load `up`). */
export const ADMIN_TOKEN_FILE = 'admin-token';
