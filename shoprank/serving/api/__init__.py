"""The online API (`shoprank serve-api`): routes, recommendations, search and the event intake."""
